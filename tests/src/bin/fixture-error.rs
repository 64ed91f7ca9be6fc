//! Answers `BeforeToolCall` and `BeforeSessionCreate` with gRPC `PERMISSION_DENIED` "nope".

use hookvisor_proto::v1::{
    BeforeSessionCreateRequest, BeforeToolCallRequest, SessionDecision, ToolCallDecision,
};
use hookvisor_tests::fixture::{Behaviour, Fixture, run};
use tonic::Status;

struct Error;

#[tonic::async_trait]
impl Behaviour for Error {
    async fn tool_call(&self, _call: BeforeToolCallRequest) -> Result<ToolCallDecision, Status> {
        Err(Status::permission_denied("nope"))
    }

    async fn session_create(
        &self,
        _call: BeforeSessionCreateRequest,
    ) -> Result<SessionDecision, Status> {
        Err(Status::permission_denied("nope"))
    }
}

fn main() {
    run(Fixture(Error))
}
