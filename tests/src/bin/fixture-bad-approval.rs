//! Asks for approval with a field out of bounds, per `FIXTURE_BAD`: `empty-title`,
//! `long-title` (81 chars), `long-description` (513 chars) or `timeout` (600001 ms).

use hookvisor_proto::v1::{ApprovalRequest, BeforeToolCallRequest, Severity, ToolCallDecision};
use hookvisor_tests::fixture::{Behaviour, Fixture, env_var, run};
use tonic::Status;

struct BadApproval(String);

impl BadApproval {
    fn approval(&self) -> ApprovalRequest {
        let mut approval = ApprovalRequest {
            title: "Run this?".to_owned(),
            description: "A fixture asks.".to_owned(),
            severity: Severity::Warning.into(),
            timeout_ms: 60_000,
            allowed_decisions: Vec::new(),
        };
        match self.0.as_str() {
            "empty-title" => approval.title.clear(),
            "long-title" => approval.title = "t".repeat(81),
            "long-description" => approval.description = "d".repeat(513),
            "timeout" => approval.timeout_ms = 600_001,
            other => panic!(
                "FIXTURE_BAD: expected empty-title, long-title, long-description or timeout, \
                 got {other:?}"
            ),
        }
        approval
    }
}

#[tonic::async_trait]
impl Behaviour for BadApproval {
    async fn tool_call(&self, _call: BeforeToolCallRequest) -> Result<ToolCallDecision, Status> {
        Ok(ToolCallDecision {
            require_approval: Some(self.approval()),
            ..ToolCallDecision::default()
        })
    }
}

fn main() {
    run(Fixture(BadApproval(
        env_var("FIXTURE_BAD").unwrap_or_default(),
    )))
}
