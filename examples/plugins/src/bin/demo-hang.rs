//! `demo-hang`: a demo fixture for `hookvisor demo`, not a policy. Do not deploy it.
//!
//! Registers `before_tool_call` in the hook stage for the tool `hang-me` only, and never answers
//! such a call, so the demo can show that the supervisor's deadline turns silence into a block.
//! No configuration.
use std::process::ExitCode;

use hookvisor_plugin::{Info, Plugin, Registration, Stage, Status, ToolCall, proto};

struct DemoHang;

impl Plugin for DemoHang {
    fn info(&self) -> Info {
        Info::new("demo-hang", env!("CARGO_PKG_VERSION")).hook(
            Registration::before_tool_call()
                .stage(Stage::Hook)
                .tools(["hang-me"]),
        )
    }

    async fn before_tool_call(&self, _call: ToolCall) -> Result<proto::ToolCallDecision, Status> {
        std::future::pending().await
    }
}

fn main() -> ExitCode {
    hookvisor_plugin::run(DemoHang)
}
