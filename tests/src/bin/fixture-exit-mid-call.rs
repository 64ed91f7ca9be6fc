//! Describes itself normally, then exits with status 3 in the middle of a `BeforeToolCall` or
//! `BeforeSessionCreate` call.

use hookvisor_proto::v1::{
    BeforeSessionCreateRequest, BeforeToolCallRequest, SessionDecision, ToolCallDecision,
};
use hookvisor_tests::fixture::{Behaviour, Fixture, run};
use tonic::Status;

struct ExitMidCall;

#[tonic::async_trait]
impl Behaviour for ExitMidCall {
    async fn tool_call(&self, _call: BeforeToolCallRequest) -> Result<ToolCallDecision, Status> {
        eprintln!("fixture-exit-mid-call: exiting in the middle of BeforeToolCall");
        std::process::exit(3)
    }

    async fn session_create(
        &self,
        _call: BeforeSessionCreateRequest,
    ) -> Result<SessionDecision, Status> {
        eprintln!("fixture-exit-mid-call: exiting in the middle of BeforeSessionCreate");
        std::process::exit(3)
    }
}

fn main() {
    run(Fixture(ExitMidCall))
}
