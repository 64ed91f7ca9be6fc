//! Contract §5: BeforeSessionCreate (namespaces, patches, blocks, failures) and SessionCreated
//! (fan-out, receipts), and §4's namespace rule for tool calls.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hookvisor_proto::v1::{
    BlockKind, Failure, Outcome, SessionCreatedNotice, SessionVerdict, Stage,
};
use hookvisor_tests::harness::{
    PluginToml, Recording, Supervisor, entry, json, plugins, session_create, tool_call,
};
use serde_json::{Value, json};

fn metadata(verdict: &SessionVerdict) -> HashMap<String, Value> {
    verdict
        .session_metadata
        .iter()
        .map(|(k, v)| (k.clone(), json(v)))
        .collect()
}

async fn create(supervisor: &Supervisor, metadata: &[(&str, Value)]) -> SessionVerdict {
    supervisor
        .client()
        .await
        .before_session_create(session_create("agent:agent-1:s1", metadata))
        .await
        .expect("BeforeSessionCreate")
        .into_inner()
}

#[tokio::test]
async fn each_plugin_sees_and_patches_only_its_namespace() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("alpha", "fixture-recorder")
            .hooks("before_session_create")
            .action("patch:{\"seen\":true}")
            .record(&recording),
        PluginToml::new("beta", "fixture-recorder")
            .hooks("before_session_create")
            .record(&recording),
        PluginToml::new("gamma", "fixture-recorder")
            .hooks("before_session_create")
            .action("patch:[1,2]")
            .record(&recording),
    ]))
    .await;
    let verdict = create(
        &supervisor,
        &[
            ("alpha", json!({"n": 1})),
            ("beta", json!({"n": 2})),
            ("other", json!("x")),
        ],
    )
    .await;
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
    assert_eq!(
        metadata(&verdict),
        HashMap::from([
            ("alpha".to_owned(), json!({"seen": true})),
            ("beta".to_owned(), json!({"n": 2})),
            ("gamma".to_owned(), json!([1, 2])),
            ("other".to_owned(), json!("x")),
        ])
    );
    let seen = |plugin: &str| {
        let calls = recording.calls_of(plugin);
        assert_eq!(calls.len(), 1, "{plugin}: {calls:?}");
        assert_eq!(calls[0]["hook"], "before_session_create");
        calls[0]["session_metadata_json"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(json(&seen("alpha")), json!({"n": 1}));
    assert_eq!(json(&seen("beta")), json!({"n": 2}));
    assert_eq!(seen("gamma"), "", "an absent namespace is the empty string");
    assert_eq!(verdict.trace.len(), 3);
    assert!(verdict.trace.iter().all(|r| r.outcome() == Outcome::Allow));
}

#[tokio::test]
async fn session_block_blocks() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("patcher", "fixture-recorder")
            .hooks("before_session_create")
            .priority(20)
            .action("patch:1"),
        PluginToml::new("doorman", "fixture-recorder")
            .hooks("before_session_create")
            .priority(10)
            .action("block:no new sessions"),
    ]))
    .await;
    let verdict = create(&supervisor, &[]).await;
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
    assert_eq!(verdict.block_kind(), BlockKind::Policy);
    assert_eq!(verdict.decided_by, "doorman");
    assert_eq!(verdict.block_reason, "no new sessions");
}

#[tokio::test]
async fn trusted_session_policy_blocks_before_hooks() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("ordinary", "fixture-recorder")
            .hooks("before_session_create")
            .priority(1000)
            .record(&recording),
        PluginToml::new("guard", "fixture-recorder")
            .policy()
            .hooks("before_session_create")
            .action("block:sessions are closed"),
    ]))
    .await;
    let verdict = create(&supervisor, &[]).await;
    assert_eq!(verdict.outcome(), Outcome::Block);
    assert_eq!(verdict.decided_by, "guard");
    assert_eq!(verdict.block_reason, "sessions are closed");
    assert_eq!(verdict.trace.len(), 1);
    assert_eq!(verdict.trace[0].stage(), Stage::Policy);
    assert!(recording.calls_of("ordinary").is_empty());
}

#[tokio::test]
async fn patch_that_is_not_json_is_an_invalid_response() {
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("sloppy", "fixture-recorder")
        .hooks("before_session_create")
        .action("patch:{not json")]))
    .await;
    let verdict = create(&supervisor, &[("sloppy", json!({"kept": true}))]).await;
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
    assert_eq!(verdict.block_kind(), BlockKind::Failure);
    assert_eq!(verdict.decided_by, "sloppy");
    assert!(
        verdict
            .block_reason
            .starts_with("plugin 'sloppy' returned an invalid response: "),
        "{}",
        verdict.block_reason
    );
    assert_eq!(
        entry(&verdict.trace, "sloppy").failure(),
        Failure::InvalidResponse
    );
}

#[tokio::test]
async fn crash_during_session_create_blocks_at_once() {
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new(
        "crasher",
        "fixture-exit-mid-call",
    )
    .hooks("before_session_create")
    .timeout_ms(10_000)]))
    .await;
    let started = Instant::now();
    let verdict = create(&supervisor, &[]).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(verdict.outcome(), Outcome::Block);
    assert_eq!(verdict.block_kind(), BlockKind::Failure);
    assert!(
        verdict
            .block_reason
            .starts_with("plugin 'crasher' crashed during the call: "),
        "{}",
        verdict.block_reason
    );
    assert_eq!(entry(&verdict.trace, "crasher").failure(), Failure::Crashed);
}

#[tokio::test]
async fn session_created_reaches_every_subscriber_and_never_blocks() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("audit", "fixture-recorder")
            .hooks("session_created")
            .record(&recording),
        PluginToml::new("stats", "fixture-recorder")
            .hooks("session_created,before_tool_call")
            .action("block:stats blocks tools")
            .record(&recording),
        PluginToml::new("bystander", "fixture-recorder")
            .hooks("before_tool_call")
            .record(&recording),
        PluginToml::new("sleeper", "fixture-hang")
            .hooks("session_created")
            .timeout_ms(300),
    ]))
    .await;
    let notice = SessionCreatedNotice {
        session_key: "agent:agent-1:s1".to_owned(),
        session_id: "sid-1".to_owned(),
        agent_id: "agent-1".to_owned(),
        session_metadata: [
            ("audit".to_owned(), json!({"a": 1}).to_string()),
            ("stats".to_owned(), json!({"s": 2}).to_string()),
        ]
        .into(),
    };
    let started = Instant::now();
    let receipt = supervisor
        .client()
        .await
        .session_created(notice)
        .await
        .expect("SessionCreated")
        .into_inner();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let mut plugins: Vec<&str> = receipt.trace.iter().map(|r| r.plugin.as_str()).collect();
    plugins.sort_unstable();
    assert_eq!(plugins, ["audit", "sleeper", "stats"], "{receipt:#?}");
    assert!(receipt.trace.iter().all(|r| r.outcome() != Outcome::Block));
    assert_eq!(entry(&receipt.trace, "audit").failure(), Failure::None);
    assert_eq!(entry(&receipt.trace, "stats").failure(), Failure::None);
    assert_eq!(entry(&receipt.trace, "sleeper").failure(), Failure::Timeout);
    let audit = recording.calls_of("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["hook"], "session_created");
    assert_eq!(audit[0]["session_id"], "sid-1");
    assert_eq!(
        json(audit[0]["session_metadata_json"].as_str().unwrap()),
        json!({"a": 1})
    );
    let stats = recording.calls_of("stats");
    assert_eq!(
        json(stats[0]["session_metadata_json"].as_str().unwrap()),
        json!({"s": 2})
    );
    assert!(recording.calls_of("bystander").is_empty());
}

#[tokio::test]
async fn tool_call_plugins_see_only_their_namespace() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("mine", "fixture-recorder").record(&recording),
        PluginToml::new("nobody", "fixture-recorder").record(&recording),
    ]))
    .await;
    let mut request = tool_call("exec", json!({}));
    request.session_metadata = [
        ("mine".to_owned(), json!({"quota": 3}).to_string()),
        ("theirs".to_owned(), json!({"secret": "s3cr3t"}).to_string()),
    ]
    .into();
    let verdict = supervisor
        .client()
        .await
        .before_tool_call(request)
        .await
        .expect("BeforeToolCall")
        .into_inner();
    assert_eq!(verdict.outcome(), Outcome::Allow);
    let mine = recording.calls_of("mine");
    assert_eq!(
        json(mine[0]["session_metadata_json"].as_str().unwrap()),
        json!({"quota": 3})
    );
    let nobody = recording.calls_of("nobody");
    assert_eq!(nobody[0]["session_metadata_json"], "");
    assert!(!recording.path().display().to_string().is_empty());
    let text = std::fs::read_to_string(recording.path()).unwrap();
    assert!(
        !text.contains("s3cr3t"),
        "another plugin's namespace leaked: {text}"
    );
}
