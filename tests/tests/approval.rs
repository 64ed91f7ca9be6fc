//! Contract §4: approval requests. The first one wins, the supervisor stamps the configured
//! name, params freeze from then on, and a later block still blocks.

use hookvisor_proto::v1::{
    ApprovalDecision, BlockKind, Failure, Outcome, Severity, Stage, ToolCallVerdict,
};
use hookvisor_tests::harness::{PluginToml, Supervisor, entry, json, plugins};
use serde_json::json;

async fn verdict_for(list: &[PluginToml]) -> ToolCallVerdict {
    let supervisor = Supervisor::start(&plugins(list)).await;
    supervisor
        .verdict("exec", json!({"command": "git push"}))
        .await
}

#[tokio::test]
async fn first_approval_wins_and_carries_the_configured_name() {
    let verdict = verdict_for(&[
        PluginToml::new("second", "fixture-recorder")
            .priority(10)
            .action("approve:Second asks"),
        PluginToml::new("first", "fixture-recorder")
            .priority(20)
            .action("approve:First asks"),
    ])
    .await;
    assert_eq!(verdict.outcome(), Outcome::RequireApproval, "{verdict:#?}");
    assert_eq!(verdict.approval_plugin, "first");
    let approval = verdict.approval.as_ref().expect("approval");
    assert_eq!(approval.title, "First asks");
    assert_eq!(approval.description, "asked by first");
    assert_eq!(approval.severity(), Severity::Critical);
    assert_eq!(approval.timeout_ms, 30_000);
    assert_eq!(
        approval.allowed_decisions,
        [
            i32::from(ApprovalDecision::AllowOnce),
            i32::from(ApprovalDecision::Deny)
        ]
    );
    assert_eq!(verdict.block_reason, "");
    assert_eq!(verdict.block_kind(), BlockKind::Unspecified);
    let outcomes: Vec<_> = verdict
        .trace
        .iter()
        .map(|r| (r.plugin.as_str(), r.outcome()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("first", Outcome::RequireApproval),
            ("second", Outcome::RequireApproval)
        ]
    );
}

#[tokio::test]
async fn params_freeze_after_an_approval_request() {
    let verdict = verdict_for(&[
        PluginToml::new("asker", "fixture-recorder")
            .priority(20)
            .action("approve:Push?"),
        PluginToml::new("rewriter", "fixture-recorder")
            .priority(10)
            .action("merge:{\"command\":\"git push --force\"}"),
    ])
    .await;
    assert_eq!(verdict.outcome(), Outcome::RequireApproval, "{verdict:#?}");
    assert_eq!(verdict.approval_plugin, "asker");
    assert_eq!(json(&verdict.params_json), json!({"command": "git push"}));
    assert!(!verdict.params_changed);
    let rewriter = entry(&verdict.trace, "rewriter");
    assert!(!rewriter.params_changed);
    assert!(rewriter.detail.contains("ignored"), "{}", rewriter.detail);
    // Nothing changed, so nothing to revalidate.
    assert!(verdict.trace.iter().all(|r| !r.revalidation));
}

#[tokio::test]
async fn rewrite_before_the_approval_still_applies() {
    let verdict = verdict_for(&[
        PluginToml::new("rewriter", "fixture-recorder")
            .priority(20)
            .action("merge:{\"dry_run\":true}"),
        PluginToml::new("asker", "fixture-recorder")
            .priority(10)
            .action("approve:Push?"),
    ])
    .await;
    assert_eq!(verdict.outcome(), Outcome::RequireApproval, "{verdict:#?}");
    assert_eq!(
        json(&verdict.params_json),
        json!({"command": "git push", "dry_run": true})
    );
    assert!(verdict.params_changed);
}

#[tokio::test]
async fn policy_approval_freezes_hook_rewrites() {
    let verdict = verdict_for(&[
        PluginToml::new("guard", "fixture-recorder")
            .policy()
            .action("approve:Policy asks"),
        PluginToml::new("rewriter", "fixture-recorder").action("merge:{\"command\":\"true\"}"),
    ])
    .await;
    assert_eq!(verdict.outcome(), Outcome::RequireApproval, "{verdict:#?}");
    assert_eq!(verdict.approval_plugin, "guard");
    assert_eq!(verdict.approval.as_ref().unwrap().title, "Policy asks");
    assert_eq!(json(&verdict.params_json), json!({"command": "git push"}));
    let rewriter = entry(&verdict.trace, "rewriter");
    assert_eq!(rewriter.stage(), Stage::Hook);
    assert!(rewriter.detail.contains("ignored"), "{}", rewriter.detail);
}

#[tokio::test]
async fn block_after_an_approval_still_blocks() {
    let verdict = verdict_for(&[
        PluginToml::new("asker", "fixture-recorder")
            .priority(20)
            .action("approve:Push?"),
        PluginToml::new("blocker", "fixture-recorder")
            .priority(10)
            .action("block:pushing is off"),
    ])
    .await;
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
    assert_eq!(verdict.block_kind(), BlockKind::Policy);
    assert_eq!(verdict.decided_by, "blocker");
    assert_eq!(verdict.block_reason, "pushing is off");
    // Kept for information.
    assert_eq!(
        verdict.approval.as_ref().map(|a| a.title.as_str()),
        Some("Push?")
    );
    assert_eq!(verdict.approval_plugin, "asker");
    let blocker = entry(&verdict.trace, "blocker");
    assert_eq!(blocker.outcome(), Outcome::Block);
    assert_eq!(blocker.failure(), Failure::None);
}
