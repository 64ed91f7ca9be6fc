//! Answers calls of the tool `big` with an oversized text, other tools (after
//! `FIXTURE_DELAY_MS`, default 0) with no opinion. `FIXTURE_OVERSIZED` says which text:
//! - `reason`: a block whose reason is `FIXTURE_BYTES` bytes long;
//! - `status`: gRPC `INTERNAL` whose status message is `FIXTURE_BYTES` bytes long (it travels
//!   in an HTTP/2 header: past the supervisor's header limit HTTP/2 itself refuses it).
//!
//! Calls of other tools are recorded in `FIXTURE_RECORD` when it is set.

use std::time::Duration;

use hookvisor_proto::v1::{BeforeToolCallRequest, ToolCallDecision};
use hookvisor_tests::fixture::{Behaviour, Fixture, env_var, run};
use tonic::Status;

struct Oversized {
    status: bool,
    bytes: usize,
    delay: Duration,
}

#[tonic::async_trait]
impl Behaviour for Oversized {
    async fn tool_call(&self, call: BeforeToolCallRequest) -> Result<ToolCallDecision, Status> {
        if call.tool_name != "big" {
            record(&call.tool_name);
            tokio::time::sleep(self.delay).await;
            return Ok(ToolCallDecision::default());
        }
        let text = "x".repeat(self.bytes);
        if self.status {
            return Err(Status::internal(text));
        }
        Ok(ToolCallDecision {
            block: true,
            block_reason: text,
            ..Default::default()
        })
    }
}

fn main() {
    let number =
        |name: &str, default: u64| env_var(name).map_or(default, |v| v.parse().expect("a number"));
    run(Fixture(Oversized {
        status: env_var("FIXTURE_OVERSIZED").as_deref() == Some("status"),
        bytes: number("FIXTURE_BYTES", 4_194_000) as usize,
        delay: Duration::from_millis(number("FIXTURE_DELAY_MS", 0)),
    }))
}

/// Appends a call line to `FIXTURE_RECORD` (the recorder's format, so tests can wait for it).
fn record(tool: &str) {
    let Some(path) = env_var("FIXTURE_RECORD") else {
        return;
    };
    let line = serde_json::json!({
        "plugin": hookvisor_tests::fixture::plugin_name(),
        "hook": "before_tool_call",
        "tool": tool,
    });
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("FIXTURE_RECORD");
    let _ = std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes());
}
