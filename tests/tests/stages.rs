//! Contract §3 (trust) and §4 (policy stage, hook stage, merge, revalidation), including the
//! acceptance cases: a trusted policy blocks before any hook runs; a hook cannot override it;
//! an untrusted plugin cannot register a policy; a rewrite a policy forbids is blocked by
//! revalidation.

use std::time::{Duration, Instant};

use hookvisor_proto::v1::{BlockKind, Failure, Outcome, Stage, ToolCallVerdict};
use hookvisor_tests::harness::{
    PluginToml, Recording, Supervisor, entry, json, plugins, step, steps,
};
use serde_json::{Value, json};

fn params_of(verdict: &ToolCallVerdict) -> Value {
    json(&verdict.params_json)
}

#[tokio::test]
async fn no_opinion_allows_with_the_request_params() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("quiet", "fixture-recorder").record(&recording)
    ]))
    .await;
    let verdict = supervisor.verdict("exec", json!({"command": "ls"})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow);
    assert_eq!(params_of(&verdict), json!({"command": "ls"}));
    assert!(!verdict.params_changed);
    assert_eq!(verdict.block_reason, "");
    assert_eq!(verdict.block_kind(), BlockKind::Unspecified);
    assert_eq!(verdict.decided_by, "");
    assert_eq!(verdict.approval, None);
    assert_eq!(verdict.approval_plugin, "");
    assert_eq!(
        steps(&verdict.trace),
        vec![step("quiet", Stage::Hook, Outcome::Allow, Failure::None)]
    );
    let calls = recording.calls_of("quiet");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["tool"], "exec");
    assert_eq!(
        json(calls[0]["params_json"].as_str().unwrap()),
        json!({"command": "ls"})
    );
    assert_eq!(
        calls[0]["workspace_dir"],
        hookvisor_tests::harness::WORKSPACE_DIR
    );
}

// Acceptance (a).
#[tokio::test]
async fn trusted_policy_blocks_before_any_hook_runs() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("ordinary", "fixture-recorder")
            .priority(1000)
            .record(&recording),
        PluginToml::new("guard", "fixture-recorder")
            .policy()
            .action("block:exec is not allowed here")
            .record(&recording),
    ]))
    .await;
    let verdict = supervisor.verdict("exec", json!({"command": "ls"})).await;
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
    assert_eq!(verdict.block_kind(), BlockKind::Policy);
    assert_eq!(verdict.decided_by, "guard");
    assert_eq!(verdict.block_reason, "exec is not allowed here");
    assert_eq!(
        steps(&verdict.trace),
        vec![step("guard", Stage::Policy, Outcome::Block, Failure::None)]
    );
    assert_eq!(recording.calls_of("guard").len(), 1);
    assert_eq!(
        recording.calls_of("ordinary"),
        Vec::<Value>::new(),
        "the ordinary hook must never be called"
    );
}

// Acceptance (b).
#[tokio::test]
async fn hook_cannot_override_a_trusted_block() {
    for action in [
        "merge:{\"command\":\"true\"}",
        "approve:Let it through",
        "allow",
    ] {
        let supervisor = Supervisor::start(&plugins(&[
            PluginToml::new("sneaky", "fixture-recorder")
                .priority(1000)
                .env("FIXTURE_PRIORITY", "1000")
                .action(action),
            PluginToml::new("guard", "fixture-recorder")
                .policy()
                .priority(-5)
                .action("block-tool:exec"),
        ]))
        .await;
        let verdict = supervisor
            .verdict("exec", json!({"command": "rm -rf /"}))
            .await;
        assert_eq!(verdict.outcome(), Outcome::Block, "{action}: {verdict:#?}");
        assert_eq!(verdict.block_kind(), BlockKind::Policy);
        assert_eq!(verdict.decided_by, "guard");
        assert_eq!(verdict.block_reason, "guard blocks tool exec");
        assert_eq!(params_of(&verdict), json!({"command": "rm -rf /"}));
        assert!(
            verdict.trace.iter().all(|r| r.plugin == "guard"),
            "{verdict:#?}"
        );
    }
}

// Acceptance (c).
#[tokio::test]
async fn untrusted_plugin_cannot_register_a_policy() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("sneaky", "fixture-recorder")
        .env("FIXTURE_STAGE", "policy")
        .record(&recording)]))
    .await;
    let verdict = supervisor.verdict("exec", json!({"command": "ls"})).await;
    let rejected = "plugin 'sneaky' requested the policy stage but is not trusted";
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
    assert_eq!(verdict.block_kind(), BlockKind::Failure);
    assert_eq!(verdict.decided_by, "sneaky");
    assert_eq!(
        verdict.block_reason,
        format!("plugin 'sneaky' is unavailable: rejected: {rejected}")
    );
    assert_eq!(verdict.trace.len(), 1, "{verdict:#?}");
    assert_eq!(verdict.trace[0].plugin, "sneaky");
    assert_eq!(verdict.trace[0].failure(), Failure::Unavailable);
    assert_eq!(verdict.trace[0].outcome(), Outcome::Block);
    assert_eq!(verdict.trace[0].detail, verdict.block_reason);
    assert!(
        recording.calls().is_empty(),
        "a rejected plugin takes no calls"
    );
    assert!(
        supervisor
            .log_line_with(&["sneaky", rejected])
            .await
            .is_some(),
        "{}",
        supervisor.log()
    );
}

// Acceptance (d).
#[tokio::test]
async fn rewrite_a_policy_forbids_is_blocked_by_revalidation() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("guard", "fixture-recorder")
            .policy()
            .action("block-if:command=rm -rf /")
            .record(&recording),
        PluginToml::new("rewriter", "fixture-recorder")
            .action("merge:{\"command\":\"rm -rf /\"}")
            .record(&recording),
    ]))
    .await;
    let verdict = supervisor.verdict("exec", json!({"command": "ls"})).await;
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
    assert_eq!(verdict.block_kind(), BlockKind::Policy);
    assert_eq!(verdict.decided_by, "guard");
    assert_eq!(verdict.block_reason, "command = rm -rf / is forbidden");
    assert_eq!(
        steps(&verdict.trace),
        vec![
            step("guard", Stage::Policy, Outcome::Allow, Failure::None),
            step("rewriter", Stage::Hook, Outcome::Allow, Failure::None),
            (
                "guard".to_owned(),
                Stage::Policy,
                Outcome::Block,
                Failure::None,
                true
            ),
        ]
    );
    let guard_calls = recording.calls_of("guard");
    assert_eq!(guard_calls.len(), 2);
    assert_eq!(
        json(guard_calls[0]["params_json"].as_str().unwrap()),
        json!({"command": "ls"})
    );
    assert_eq!(
        json(guard_calls[1]["params_json"].as_str().unwrap()),
        json!({"command": "rm -rf /"})
    );
}

#[tokio::test]
async fn harmless_rewrite_passes_revalidation() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("guard", "fixture-recorder")
            .policy()
            .action("block-if:command=rm -rf /"),
        PluginToml::new("rewriter", "fixture-recorder").action("merge:{\"command\":\"ls -l\"}"),
    ]))
    .await;
    let verdict = supervisor.verdict("exec", json!({"command": "ls"})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
    assert!(verdict.params_changed);
    assert_eq!(params_of(&verdict), json!({"command": "ls -l"}));
    assert_eq!(
        steps(&verdict.trace),
        vec![
            step("guard", Stage::Policy, Outcome::Allow, Failure::None),
            step("rewriter", Stage::Hook, Outcome::Allow, Failure::None),
            (
                "guard".to_owned(),
                Stage::Policy,
                Outcome::Allow,
                Failure::None,
                true
            ),
        ]
    );
    assert!(entry(&verdict.trace, "rewriter").params_changed);
}

#[tokio::test]
async fn no_revalidation_without_a_hook_rewrite() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("guard", "fixture-recorder")
            .policy()
            .action("merge:{\"sanitized\":true}"),
        PluginToml::new("quiet", "fixture-recorder"),
    ]))
    .await;
    let verdict = supervisor.verdict("exec", json!({"command": "ls"})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow);
    assert!(verdict.params_changed);
    assert_eq!(
        params_of(&verdict),
        json!({"command": "ls", "sanitized": true})
    );
    assert_eq!(
        steps(&verdict.trace),
        vec![
            step("guard", Stage::Policy, Outcome::Allow, Failure::None),
            step("quiet", Stage::Hook, Outcome::Allow, Failure::None),
        ]
    );
}

#[tokio::test]
async fn revalidate_false_turns_revalidation_off() {
    let body = format!(
        "[hooks.before_tool_call]\nrevalidate = false\n{}",
        plugins(&[
            PluginToml::new("guard", "fixture-recorder")
                .policy()
                .action("block-if:command=rm -rf /"),
            PluginToml::new("rewriter", "fixture-recorder")
                .action("merge:{\"command\":\"rm -rf /\"}"),
        ])
    );
    let supervisor = Supervisor::start(&body).await;
    let verdict = supervisor.verdict("exec", json!({"command": "ls"})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
    assert_eq!(params_of(&verdict), json!({"command": "rm -rf /"}));
    assert!(verdict.trace.iter().all(|r| !r.revalidation));
    assert_eq!(verdict.trace.len(), 2);
}

#[tokio::test]
async fn policies_chain_params_and_hooks_see_the_policy_result() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("first", "fixture-recorder")
            .policy()
            .priority(20)
            .action("merge:{\"a\":1}")
            .record(&recording),
        PluginToml::new("second", "fixture-recorder")
            .policy()
            .priority(10)
            .action("merge:{\"b\":2}")
            .record(&recording),
        PluginToml::new("hook-x", "fixture-recorder")
            .priority(5)
            .action("merge:{\"x\":true}")
            .record(&recording),
        PluginToml::new("hook-y", "fixture-recorder")
            .priority(1)
            .record(&recording),
    ]))
    .await;
    let verdict = supervisor.verdict("exec", json!({"command": "ls"})).await;
    let seen = |plugin: &str| {
        let calls = recording.calls_of(plugin);
        json(calls[0]["params_json"].as_str().unwrap())
    };
    assert_eq!(seen("first"), json!({"command": "ls"}));
    assert_eq!(seen("second"), json!({"command": "ls", "a": 1}));
    // Both hooks see what the policy stage left, never each other's rewrite.
    assert_eq!(seen("hook-x"), json!({"command": "ls", "a": 1, "b": 2}));
    assert_eq!(seen("hook-y"), json!({"command": "ls", "a": 1, "b": 2}));
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
    assert_eq!(
        params_of(&verdict),
        json!({"command": "ls", "a": 1, "b": 2, "x": true})
    );
    let order: Vec<&str> = verdict.trace.iter().map(|r| r.plugin.as_str()).collect();
    assert_eq!(
        order,
        ["first", "second", "hook-x", "hook-y", "first", "second"]
    );
    assert!(verdict.trace[4].revalidation && verdict.trace[5].revalidation);
}

#[tokio::test]
async fn last_hook_rewrite_wins_merged_key_by_key() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("early", "fixture-recorder")
            .priority(20)
            .action("rewrite:{\"a\":\"early\",\"b\":\"early\"}"),
        PluginToml::new("late", "fixture-recorder")
            .priority(10)
            .action("rewrite:{\"a\":\"late\"}"),
    ]))
    .await;
    let verdict = supervisor.verdict("exec", json!({"a": 0, "keep": 1})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
    assert!(verdict.params_changed);
    // The winning rewrite's top-level keys replace those of the policy stage's params.
    assert_eq!(params_of(&verdict), json!({"a": "late", "keep": 1}));
    assert!(entry(&verdict.trace, "late").params_changed);
}

#[tokio::test]
async fn configured_priority_orders_hooks_over_their_own() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("low", "fixture-recorder")
            .env("FIXTURE_PRIORITY", "1000")
            .priority(1)
            .action("block:low says no"),
        PluginToml::new("high", "fixture-recorder")
            .env("FIXTURE_PRIORITY", "-1000")
            .priority(50)
            .action("block:high says no"),
    ]))
    .await;
    let verdict = supervisor.verdict("exec", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Block);
    assert_eq!(verdict.decided_by, "high");
    assert_eq!(verdict.block_reason, "high says no");
}

#[tokio::test]
async fn equal_priorities_keep_configuration_order() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("one", "fixture-recorder").action("block:one says no"),
        PluginToml::new("two", "fixture-recorder").action("block:two says no"),
    ]))
    .await;
    let verdict = supervisor.verdict("exec", json!({})).await;
    assert_eq!(verdict.decided_by, "one");
    assert_eq!(verdict.block_reason, "one says no");
}

#[tokio::test]
async fn block_without_reason_names_the_plugin() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("terse", "fixture-recorder").action("block:")
    ]))
    .await;
    let verdict = supervisor.verdict("exec", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Block);
    assert_eq!(verdict.block_kind(), BlockKind::Policy);
    assert_eq!(verdict.block_reason, "blocked by terse");
}

#[tokio::test]
async fn slower_higher_priority_block_wins_over_faster_lower_one() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("slow", "fixture-slow")
            .priority(100)
            .env("FIXTURE_DELAY_MS", "500")
            .action("block:slow says no"),
        PluginToml::new("fast", "fixture-recorder")
            .priority(10)
            .action("block:fast says no"),
    ]))
    .await;
    let verdict = supervisor.verdict("exec", json!({})).await;
    assert_eq!(verdict.decided_by, "slow", "{verdict:#?}");
    assert_eq!(verdict.block_reason, "slow says no");
    let order: Vec<&str> = verdict.trace.iter().map(|r| r.plugin.as_str()).collect();
    assert_eq!(order[0], "slow");
}

#[tokio::test]
async fn hooks_run_concurrently() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("slow-a", "fixture-slow").env("FIXTURE_DELAY_MS", "800"),
        PluginToml::new("slow-b", "fixture-slow").env("FIXTURE_DELAY_MS", "800"),
        PluginToml::new("slow-c", "fixture-slow").env("FIXTURE_DELAY_MS", "800"),
    ]))
    .await;
    let started = Instant::now();
    let verdict = supervisor.verdict("exec", json!({})).await;
    let elapsed = started.elapsed();
    assert_eq!(verdict.outcome(), Outcome::Allow);
    assert_eq!(verdict.trace.len(), 3);
    assert!(elapsed >= Duration::from_millis(800), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(1600),
        "calls were not concurrent: {elapsed:?}"
    );
}

#[tokio::test]
async fn calls_in_flight_are_cancelled_once_the_verdict_is_decided() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("decider", "fixture-recorder")
            .priority(100)
            .action("block:decided"),
        PluginToml::new("sleeper", "fixture-hang")
            .priority(10)
            .timeout_ms(10_000),
    ]))
    .await;
    let started = Instant::now();
    let verdict = supervisor.verdict("exec", json!({})).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(verdict.outcome(), Outcome::Block);
    assert_eq!(verdict.decided_by, "decider");
    assert_eq!(verdict.block_reason, "decided");
    let sleeper = entry(&verdict.trace, "sleeper");
    assert_eq!(sleeper.outcome(), Outcome::Unspecified);
    assert_eq!(sleeper.failure(), Failure::None);
    assert!(
        sleeper.detail.starts_with("cancelled"),
        "{}",
        sleeper.detail
    );
    assert_eq!(verdict.trace[0].plugin, "decider");
}

#[tokio::test]
async fn tools_filter_limits_which_calls_a_plugin_takes() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new(
        "exec-only",
        "fixture-recorder",
    )
    .env("FIXTURE_TOOLS", "exec,shell")
    .action("block:no shells")
    .record(&recording)]))
    .await;
    let read = supervisor.verdict("read", json!({"path": "a"})).await;
    assert_eq!(read.outcome(), Outcome::Allow, "{read:#?}");
    assert!(read.trace.is_empty(), "{read:#?}");
    let exec = supervisor.verdict("exec", json!({})).await;
    assert_eq!(exec.outcome(), Outcome::Block);
    assert_eq!(exec.block_reason, "no shells");
    let shell = supervisor.verdict("shell", json!({})).await;
    assert_eq!(shell.outcome(), Outcome::Block);
    let tools: Vec<Value> = recording
        .calls()
        .iter()
        .map(|c| c["tool"].clone())
        .collect();
    assert_eq!(tools, [json!("exec"), json!("shell")]);
}

// Speculative hooks (contract §4.6).

#[tokio::test]
async fn a_speculative_hook_is_asked_beside_the_policy_and_dropped_when_it_blocks() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("guard", "fixture-recorder")
            .policy()
            .key("rewrites_params = false")
            .env("FIXTURE_DELAY_MS", "200")
            .action("block:no exec")
            .record(&recording),
        PluginToml::new("early", "fixture-recorder")
            .key("speculative = true")
            .record(&recording),
    ]))
    .await;
    let verdict = supervisor.verdict("exec", json!({"command": "ls"})).await;
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
    assert_eq!(verdict.decided_by, "guard");
    assert_eq!(
        steps(&verdict.trace),
        vec![step("guard", Stage::Policy, Outcome::Block, Failure::None)],
        "the verdict is the sequential one: the hook is not in it"
    );
    let calls = recording.calls_of("early");
    assert_eq!(calls.len(), 1, "asked at the same time as the policy");
    assert_eq!(
        json(calls[0]["params_json"].as_str().unwrap_or_default()),
        json!({"command": "ls"})
    );
}

#[tokio::test]
async fn a_speculative_hook_is_merged_in_its_place_and_revalidated() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("guard", "fixture-recorder")
            .policy()
            .key("rewrites_params = false")
            .env("FIXTURE_DELAY_MS", "100")
            .record(&recording),
        PluginToml::new("early", "fixture-recorder")
            .key("speculative = true")
            .action(r#"merge:{"cwd":"/tmp"}"#)
            .record(&recording),
    ]))
    .await;
    let verdict = supervisor.verdict("exec", json!({"command": "ls"})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
    assert_eq!(params_of(&verdict), json!({"command": "ls", "cwd": "/tmp"}));
    let trace = steps(&verdict.trace);
    assert_eq!(
        trace,
        vec![
            step("guard", Stage::Policy, Outcome::Allow, Failure::None),
            step("early", Stage::Hook, Outcome::Allow, Failure::None),
            // Revalidation: the hook's rewrite went past the policy again.
            (
                "guard".to_owned(),
                Stage::Policy,
                Outcome::Allow,
                Failure::None,
                true
            ),
        ]
    );
    assert_eq!(recording.calls_of("guard").len(), 2);
}

#[tokio::test]
async fn a_rewrite_from_a_plugin_configured_not_to_rewrite_blocks() {
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("guard", "fixture-recorder")
        .policy()
        .key("rewrites_params = false")
        .action(r#"rewrite:{"command":"true"}"#)]))
    .await;
    let verdict = supervisor.verdict("exec", json!({"command": "ls"})).await;
    assert_eq!(verdict.outcome(), Outcome::Block);
    assert_eq!(verdict.block_kind(), BlockKind::Failure);
    assert_eq!(verdict.trace[0].failure(), Failure::InvalidResponse);
    assert_eq!(
        verdict.block_reason,
        "plugin 'guard' returned an invalid response: params_json is set, but the plugin is \
         configured with rewrites_params = false"
    );
    assert_eq!(params_of(&verdict), json!({"command": "ls"}));
}
