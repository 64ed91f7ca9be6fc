//! Describes itself normally, then never answers a call.

use hookvisor_proto::v1::{
    Ack, BeforeSessionCreateRequest, BeforeToolCallRequest, SessionCreatedEvent, SessionDecision,
    ToolCallDecision,
};
use hookvisor_tests::fixture::{Behaviour, Fixture, run};
use tonic::Status;

struct Hang;

#[tonic::async_trait]
impl Behaviour for Hang {
    async fn tool_call(&self, _call: BeforeToolCallRequest) -> Result<ToolCallDecision, Status> {
        std::future::pending().await
    }

    async fn session_create(
        &self,
        _call: BeforeSessionCreateRequest,
    ) -> Result<SessionDecision, Status> {
        std::future::pending().await
    }

    async fn session_created(&self, _event: SessionCreatedEvent) -> Result<Ack, Status> {
        std::future::pending().await
    }
}

fn main() {
    run(Fixture(Hang))
}
