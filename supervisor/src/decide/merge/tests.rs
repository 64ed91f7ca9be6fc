//! A table of cases per rule of contract §4 and §5, and a property test that merging hook-stage
//! results in any arrival order gives the sequential verdict.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn call(name: &str, stage: Stage) -> Slot {
    Slot {
        plugin: Arc::from(name),
        stage,
        skip_on_failure: false,
    }
}

fn policy(name: &str) -> Slot {
    call(name, Stage::Policy)
}

fn hook(name: &str) -> Slot {
    call(name, Stage::Hook)
}

fn skipping(name: &str) -> Slot {
    Slot {
        skip_on_failure: true,
        ..hook(name)
    }
}

fn obj(v: Value) -> Params {
    match v {
        Value::Object(m) => m,
        other => panic!("test params must be an object, got {other}"),
    }
}

fn rewrite(v: Value) -> Result<ToolAnswer, Failed> {
    Ok(ToolAnswer {
        params: Some(obj(v)),
        ..Default::default()
    })
}

fn block(reason: &str) -> Result<ToolAnswer, Failed> {
    Ok(ToolAnswer {
        block: Some(reason.into()),
        ..Default::default()
    })
}

fn approve(title: &str) -> Result<ToolAnswer, Failed> {
    Ok(ToolAnswer {
        approval: Some(ApprovalRequest {
            title: title.into(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn allow() -> Result<ToolAnswer, Failed> {
    Ok(ToolAnswer::default())
}

const MS: Duration = Duration::from_millis(1);

/// Runs a whole tool-call merge sequentially, the way the service would with no concurrency.
fn run(params: Value, steps: Vec<(Slot, Result<ToolAnswer, Failed>)>) -> ToolCallVerdict {
    let params = obj(params);
    let text = Value::Object(params.clone()).to_string();
    let mut merge = ToolMerge::new(&params);
    for (call, result) in steps {
        if merge.apply(&call, result, MS) == Flow::Decided {
            break;
        }
    }
    merge.finish(&text)
}

fn params_of(verdict: &ToolCallVerdict) -> Value {
    serde_json::from_str(&verdict.params_json).expect("verdict params are JSON")
}

#[test]
fn no_plugins_allow_with_the_original_text() {
    let params = obj(json!({"a": 1}));
    let mut merge = ToolMerge::new(&params);
    assert!(!merge.needs_revalidation());
    merge.begin_revalidation();
    let verdict = merge.finish("{ \"a\" : 1 }");
    assert_eq!(verdict.outcome, Outcome::Allow as i32);
    assert_eq!(verdict.params_json, "{ \"a\" : 1 }");
    assert!(!verdict.params_changed);
    assert!(verdict.trace.is_empty());
}

#[test]
fn policies_chain_params_and_replace_the_object_whole() {
    let params = obj(json!({"a": 1, "b": 2}));
    let mut merge = ToolMerge::new(&params);
    merge.apply(&policy("p1"), rewrite(json!({"a": 10})), MS);
    assert_eq!(
        merge.params(),
        &obj(json!({"a": 10})),
        "p2 sees p1's rewrite"
    );
    merge.apply(&policy("p2"), allow(), MS);
    let verdict = merge.finish("{}");
    assert_eq!(params_of(&verdict), json!({"a": 10}));
    assert!(verdict.params_changed);
    assert!(verdict.trace[0].params_changed);
    assert!(!verdict.trace[1].params_changed);
}

#[test]
fn the_first_policy_block_ends_everything() {
    let verdict = run(
        json!({"cmd": "rm"}),
        vec![
            (policy("deny"), block("no rm")),
            (policy("later"), allow()),
            (hook("h"), allow()),
        ],
    );
    assert_eq!(verdict.outcome, Outcome::Block as i32);
    assert_eq!(verdict.block_kind, BlockKind::Policy as i32);
    assert_eq!(verdict.block_reason, "no rm");
    assert_eq!(verdict.decided_by, "deny");
    assert_eq!(verdict.trace.len(), 1, "nothing after the block was merged");
}

#[test]
fn a_block_without_reason_names_the_plugin() {
    let verdict = run(json!({}), vec![(hook("quiet"), block(""))]);
    assert_eq!(verdict.block_reason, "blocked by quiet");
}

#[test]
fn a_policy_failure_blocks_with_the_contract_reason() {
    let cases = [
        (
            Failed::timeout(Duration::from_millis(200)),
            "timeout",
            Failure::Timeout,
        ),
        (
            Failed::crashed("exit status 3"),
            "crashed",
            Failure::Crashed,
        ),
        (
            Failed::unavailable("starting"),
            "unavailable",
            Failure::Unavailable,
        ),
        (
            Failed::invalid("params_json is not a JSON object"),
            "invalid_response",
            Failure::InvalidResponse,
        ),
        (
            Failed::error(tonic::Code::Internal, "boom"),
            "error",
            Failure::Error,
        ),
    ];
    for (failed, word, kind) in cases {
        let sentence = failed.sentence("deny-list");
        // A trusted policy can never be skipped, whatever the flag says.
        let call = Slot {
            skip_on_failure: true,
            ..policy("deny-list")
        };
        let verdict = run(json!({}), vec![(call, Err(failed)), (hook("h"), allow())]);
        assert_eq!(verdict.outcome, Outcome::Block as i32);
        assert_eq!(verdict.block_kind, BlockKind::Failure as i32);
        // The same reason as a hook's failure: the plugin named once, and what happened.
        assert_eq!(verdict.block_reason, sentence, "{word}");
        assert_eq!(verdict.decided_by, "deny-list");
        assert_eq!(verdict.trace.len(), 1);
        assert_eq!(verdict.trace[0].failure, kind as i32);
        assert_eq!(verdict.trace[0].detail, sentence);
    }
}

#[test]
fn a_hook_failure_blocks_at_its_position_naming_the_plugin() {
    let verdict = run(
        json!({}),
        vec![
            (hook("first"), allow()),
            (
                hook("path-guard"),
                Err(Failed::timeout(Duration::from_millis(200))),
            ),
            (hook("after"), block("too late to matter")),
        ],
    );
    assert_eq!(verdict.outcome, Outcome::Block as i32);
    assert_eq!(verdict.block_kind, BlockKind::Failure as i32);
    assert_eq!(
        verdict.block_reason,
        "plugin 'path-guard' timed out after 200 ms"
    );
    assert_eq!(verdict.decided_by, "path-guard");
    assert_eq!(verdict.trace[1].failure, Failure::Timeout as i32);
}

#[test]
fn a_skipped_failure_is_recorded_and_passed_over() {
    let verdict = run(
        json!({}),
        vec![
            (skipping("flaky"), Err(Failed::crashed("exit status 1"))),
            (hook("ok"), allow()),
        ],
    );
    assert_eq!(verdict.outcome, Outcome::Allow as i32);
    assert_eq!(verdict.trace.len(), 2);
    assert_eq!(verdict.trace[0].failure, Failure::Crashed as i32);
    assert_eq!(verdict.trace[0].outcome, Outcome::Allow as i32);
    assert!(
        verdict.trace[0].detail.starts_with("skipped"),
        "{}",
        verdict.trace[0].detail
    );
}

#[test]
fn the_first_hook_block_is_terminal() {
    let verdict = run(
        json!({}),
        vec![
            (hook("a"), allow()),
            (hook("b"), block("b says no")),
            (hook("c"), block("c says no")),
        ],
    );
    assert_eq!(verdict.block_reason, "b says no");
    assert_eq!(verdict.decided_by, "b");
    assert_eq!(verdict.block_kind, BlockKind::Policy as i32);
}

#[test]
fn hooks_see_the_policy_params_and_the_last_rewrite_wins_key_by_key() {
    let params = obj(json!({"a": 1, "b": 1, "c": 1}));
    let mut merge = ToolMerge::new(&params);
    merge.apply(&policy("p"), rewrite(json!({"a": 2, "b": 2, "c": 2})), MS);
    merge.apply(&hook("h1"), rewrite(json!({"a": 3, "x": 3})), MS);
    assert_eq!(
        merge.params(),
        &obj(json!({"a": 2, "b": 2, "c": 2})),
        "hooks never see hooks"
    );
    merge.apply(&hook("h2"), rewrite(json!({"b": 4})), MS);
    assert!(merge.needs_revalidation());
    let verdict = merge.finish("{}");
    // h2's rewrite won over h1's, merged over the policy's object.
    assert_eq!(params_of(&verdict), json!({"a": 2, "b": 4, "c": 2}));
    assert!(verdict.params_changed);
}

#[test]
fn the_first_approval_wins_and_freezes_params() {
    let verdict = run(
        json!({"a": 1}),
        vec![
            (hook("h1"), rewrite(json!({"a": 2}))),
            (
                hook("gate"),
                Ok(ToolAnswer {
                    params: Some(obj(json!({"a": 3}))),
                    approval: Some(ApprovalRequest {
                        title: "ok?".into(),
                        ..Default::default()
                    }),
                    block: None,
                }),
            ),
            (hook("late"), rewrite(json!({"a": 4}))),
            (hook("gate2"), approve("me too")),
        ],
    );
    assert_eq!(verdict.outcome, Outcome::RequireApproval as i32);
    assert_eq!(verdict.approval_plugin, "gate");
    assert_eq!(
        verdict.approval.as_ref().map(|a| a.title.as_str()),
        Some("ok?")
    );
    // The approving plugin's own rewrite counts; later ones do not.
    assert_eq!(params_of(&verdict), json!({"a": 3}));
    assert!(
        verdict.trace[2].detail.contains("ignored"),
        "{}",
        verdict.trace[2].detail
    );
    assert!(!verdict.trace[2].params_changed);
    assert!(verdict.trace[3].detail.contains("'gate' asked first"));
}

#[test]
fn a_policy_approval_freezes_hook_rewrites() {
    let verdict = run(
        json!({"a": 1}),
        vec![
            (policy("p"), approve("check")),
            (hook("h"), rewrite(json!({"a": 2}))),
        ],
    );
    assert_eq!(verdict.outcome, Outcome::RequireApproval as i32);
    assert_eq!(verdict.approval_plugin, "p");
    assert_eq!(params_of(&verdict), json!({"a": 1}));
    assert!(!verdict.params_changed);
}

#[test]
fn a_block_after_an_approval_still_blocks() {
    let verdict = run(
        json!({}),
        vec![(hook("gate"), approve("ok?")), (hook("deny"), block("no"))],
    );
    assert_eq!(verdict.outcome, Outcome::Block as i32);
    assert_eq!(verdict.decided_by, "deny");
    assert_eq!(verdict.approval_plugin, "gate");
}

#[test]
fn revalidation_sees_the_final_params_and_can_block() {
    let params = obj(json!({"path": "a.txt"}));
    let mut merge = ToolMerge::new(&params);
    merge.apply(&policy("guard"), allow(), MS);
    merge.apply(&hook("rw"), rewrite(json!({"path": "/etc/shadow"})), MS);
    assert!(merge.needs_revalidation());
    merge.begin_revalidation();
    assert_eq!(merge.params(), &obj(json!({"path": "/etc/shadow"})));
    assert!(!merge.needs_revalidation(), "revalidation happens once");
    merge.apply(&policy("guard"), block("no /etc"), MS);
    let verdict = merge.finish("{}");
    assert_eq!(verdict.outcome, Outcome::Block as i32);
    assert_eq!(verdict.decided_by, "guard");
    assert!(verdict.trace[2].revalidation);
    assert!(!verdict.trace[0].revalidation);
}

#[test]
fn revalidation_rewrites_are_applied() {
    let params = obj(json!({"a": 1}));
    let mut merge = ToolMerge::new(&params);
    merge.apply(&hook("h"), rewrite(json!({"a": 2})), MS);
    merge.begin_revalidation();
    merge.apply(&policy("p"), rewrite(json!({"a": 3})), MS);
    assert!(!merge.needs_revalidation());
    let verdict = merge.finish("{}");
    assert_eq!(params_of(&verdict), json!({"a": 3}));
}

#[test]
fn a_rewrite_to_the_same_params_needs_no_revalidation() {
    let params = obj(json!({"a": 1}));
    let mut merge = ToolMerge::new(&params);
    merge.apply(&hook("h"), rewrite(json!({"a": 1})), MS);
    assert!(!merge.needs_revalidation());
}

#[test]
fn sessions_patch_only_their_own_namespace() {
    let mut metadata = HashMap::new();
    metadata.insert("tagger".to_string(), "{\"old\":true}".to_string());
    metadata.insert("other".to_string(), "1".to_string());
    let mut merge = SessionMerge::new(metadata);
    assert_eq!(merge.namespace("tagger"), "{\"old\":true}");
    assert_eq!(merge.namespace("nobody"), "");
    let patch = Ok(SessionAnswer {
        block: None,
        patch: Some("{\"labels\":[\"x\"]}".into()),
    });
    merge.apply(&hook("tagger"), patch, MS);
    merge.apply(&hook("quiet"), Ok(SessionAnswer::default()), MS);
    let verdict = merge.finish();
    assert_eq!(verdict.outcome, Outcome::Allow as i32);
    assert_eq!(verdict.session_metadata["tagger"], "{\"labels\":[\"x\"]}");
    assert_eq!(verdict.session_metadata["other"], "1");
    assert!(!verdict.session_metadata.contains_key("quiet"));
}

#[test]
fn sessions_block_on_a_block_or_a_failure() {
    let mut merge = SessionMerge::new(HashMap::new());
    let flow = merge.apply(&policy("p"), Err(Failed::unavailable("starting")), MS);
    assert_eq!(flow, Flow::Decided);
    let verdict = merge.finish();
    assert_eq!(verdict.block_reason, "plugin 'p' is unavailable: starting");
    assert_eq!(verdict.block_kind, BlockKind::Failure as i32);

    let mut merge = SessionMerge::new(HashMap::new());
    let no = Ok(SessionAnswer {
        block: Some("no".into()),
        patch: Some("1".into()),
    });
    merge.apply(&hook("h"), no, MS);
    let verdict = merge.finish();
    assert_eq!(verdict.outcome, Outcome::Block as i32);
    assert_eq!(verdict.block_kind, BlockKind::Policy as i32);
    assert!(
        verdict.session_metadata.is_empty(),
        "a blocking plugin's patch is not applied"
    );
}

#[test]
fn observations_never_block() {
    let result = observation(
        &hook("obs"),
        Err(Failed::timeout(Duration::from_millis(5))),
        MS,
    );
    assert_eq!(result.outcome, Outcome::Allow as i32);
    assert_eq!(result.failure, Failure::Timeout as i32);
    assert_eq!(result.detail, "plugin 'obs' timed out after 5 ms");
}

#[test]
fn in_order_holds_early_arrivals_and_records_cancellations() {
    let calls = [hook("a"), hook("b"), hook("c"), hook("d")];
    let params = obj(json!({}));
    let mut merge = ToolMerge::new(&params);
    let mut order = InOrder::new(&mut merge, &calls);
    assert_eq!(
        order.offer(2, block("c blocks"), MS),
        Flow::Continue,
        "a and b still running"
    );
    assert_eq!(order.offer(0, allow(), MS), Flow::Continue);
    assert_eq!(
        order.offer(1, allow(), MS),
        Flow::Decided,
        "b done: c's block is final"
    );
    order.finish();
    let verdict = merge.finish("{}");
    assert_eq!(verdict.decided_by, "c");
    assert_eq!(verdict.trace.len(), 4);
    assert_eq!(verdict.trace[3].outcome, Outcome::Unspecified as i32);
    assert!(verdict.trace[3].detail.starts_with("cancelled"));
}

// ---- property: any arrival order gives the sequential verdict ----

fn arb_answer() -> impl Strategy<Value = (bool, Result<ToolAnswer, Failed>)> {
    let value = prop_oneof![Just(json!(1)), Just(json!("x")), Just(json!({"n": [1, 2]}))];
    let rewrite = proptest::collection::btree_map("[abc]", value, 0..3)
        .prop_map(|m| m.into_iter().collect::<Params>());
    let answer = (
        proptest::option::weighted(0.4, rewrite),
        proptest::option::weighted(0.15, "[a-z]{0,4}"),
        proptest::option::weighted(0.2, "[A-Z][a-z]{0,5}"),
    )
        .prop_map(|(params, block, title)| {
            Ok(ToolAnswer {
                params,
                block,
                approval: title.map(|title| ApprovalRequest {
                    title,
                    ..Default::default()
                }),
            })
        });
    let failure = prop_oneof![
        Just(Failed::timeout(Duration::from_millis(50))),
        Just(Failed::crashed("exit status 9")),
        Just(Failed::error(tonic::Code::Unknown, "x")),
    ]
    .prop_map(Err);
    (any::<bool>(), prop_oneof![4 => answer, 1 => failure])
}

fn merged_without_cancellations(verdict: &ToolCallVerdict) -> ToolCallVerdict {
    let mut v = verdict.clone();
    v.trace.retain(|r| r.outcome != Outcome::Unspecified as i32);
    v
}

proptest! {
    #[test]
    fn concurrent_merge_equals_the_sequential_run(
        answers in proptest::collection::vec(arb_answer(), 0..8),
        order_seed in proptest::collection::vec(any::<u32>(), 8),
    ) {
        let calls: Vec<Slot> = answers
            .iter()
            .enumerate()
            .map(|(i, (skip, _))| Slot { skip_on_failure: *skip, ..hook(&format!("p{i}")) })
            .collect();
        let start = obj(json!({"a": 0, "z": true}));

        // Sequential: one after another, stopping at the decision.
        let mut sequential = ToolMerge::new(&start);
        for (call, (_, result)) in calls.iter().zip(&answers) {
            if sequential.apply(call, result.clone(), MS) == Flow::Decided {
                break;
            }
        }
        let sequential = sequential.finish("{}");

        // Concurrent: results arrive in a random permutation.
        let mut arrival: Vec<usize> = (0..calls.len()).collect();
        arrival.sort_by_key(|&i| order_seed[i]);
        let mut concurrent = ToolMerge::new(&start);
        let mut order = InOrder::new(&mut concurrent, &calls);
        for &i in &arrival {
            if order.offer(i, answers[i].1.clone(), MS) == Flow::Decided {
                break;
            }
        }
        order.finish();
        let concurrent = concurrent.finish("{}");

        prop_assert_eq!(merged_without_cancellations(&concurrent), sequential.clone());
        // Every plugin appears once in the trace, merged or cancelled, in merge order.
        let names: Vec<&str> = concurrent.trace.iter().map(|r| r.plugin.as_str()).collect();
        let want: Vec<String> = calls.iter().map(|c| c.plugin.to_string()).collect();
        prop_assert_eq!(names, want);
    }
}

#[test]
fn a_hook_rewrite_whose_merge_breaks_the_limits_is_an_invalid_response() {
    // Each side has 300 keys (within 512); merged key by key they would have 600.
    let keys = |prefix: &str| {
        Value::Object(
            (0..300)
                .map(|i| (format!("{prefix}{i}"), json!(1)))
                .collect(),
        )
    };
    let verdict = run(keys("p"), vec![(hook("wide"), rewrite(keys("h")))]);
    assert_eq!(verdict.outcome, Outcome::Block as i32);
    assert_eq!(verdict.block_kind, BlockKind::Failure as i32);
    assert_eq!(verdict.trace[0].failure, Failure::InvalidResponse as i32);
    assert!(
        verdict
            .block_reason
            .contains("keys in one object 600 exceeds the limit of 512"),
        "{}",
        verdict.block_reason
    );
    assert_eq!(params_of(&verdict), keys("p"), "the params stay the host's");
}
